build-mut/utf8.o: src/utf8.c include/utf8.h
include/utf8.h:
