build-mut/log.o: src/log.c include/log.h include/utf8.h
include/log.h:
include/utf8.h:
