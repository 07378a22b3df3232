build-mut/failures.o: src/failures.c include/failures.h
include/failures.h:
