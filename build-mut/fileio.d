build-mut/fileio.o: src/fileio.c include/fileio.h
include/fileio.h:
