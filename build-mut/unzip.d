build-mut/unzip.o: src/unzip.c include/unzip.h include/fileio.h \
 include/log.h
include/unzip.h:
include/fileio.h:
include/log.h:
