build-mut/store_fetch.o: src/store_fetch.c include/store.h \
 src/store_int.h include/unzip.h include/fileio.h include/log.h \
 include/source.h include/tcia.h
include/store.h:
src/store_int.h:
include/unzip.h:
include/fileio.h:
include/log.h:
include/source.h:
include/tcia.h:
