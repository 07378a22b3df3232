build-mut/store.o: src/store.c include/store.h src/store_int.h \
 include/unzip.h include/fileio.h include/log.h include/tcia.h
include/store.h:
src/store_int.h:
include/unzip.h:
include/fileio.h:
include/log.h:
include/tcia.h:
