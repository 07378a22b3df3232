build-mut/catalog_load.o: src/catalog_load.c src/catalog_int.h \
 include/catalog.h include/log.h
src/catalog_int.h:
include/catalog.h:
include/log.h:
