build-mut/metacache.o: src/metacache.c include/metacache.h \
 include/fileio.h include/log.h
include/metacache.h:
include/fileio.h:
include/log.h:
