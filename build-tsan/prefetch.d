build-tsan/prefetch.o: src/prefetch.c
