build-mut/inodes.o: src/inodes.c include/inodes.h
include/inodes.h:
