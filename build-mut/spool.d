build-mut/spool.o: src/spool.c include/spool.h
include/spool.h:
