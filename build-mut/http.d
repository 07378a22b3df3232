build-mut/http.o: src/http.c include/http.h include/fileio.h \
 include/log.h
include/http.h:
include/fileio.h:
include/log.h:
