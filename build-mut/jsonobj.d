build-mut/jsonobj.o: src/jsonobj.c include/jsonobj.h
include/jsonobj.h:
