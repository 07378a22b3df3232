build-dev/prefetch.o: src/prefetch.c
