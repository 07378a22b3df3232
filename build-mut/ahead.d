build-mut/ahead.o: src/ahead.c include/ahead.h include/log.h
include/ahead.h:
include/log.h:
