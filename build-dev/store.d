build-dev/store.o: src/store.c include/store.h include/fileio.h \
 include/log.h include/tcia.h include/unzip.h
include/store.h:
include/fileio.h:
include/log.h:
include/tcia.h:
include/unzip.h:
