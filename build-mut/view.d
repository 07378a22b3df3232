build-mut/view.o: src/view.c include/view.h
include/view.h:
