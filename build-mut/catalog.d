build-mut/catalog.o: src/catalog.c src/catalog_int.h include/catalog.h \
 include/log.h
src/catalog_int.h:
include/catalog.h:
include/log.h:
