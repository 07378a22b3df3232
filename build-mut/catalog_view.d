build-mut/catalog_view.o: src/catalog_view.c src/catalog_int.h \
 include/catalog.h include/log.h
src/catalog_int.h:
include/catalog.h:
include/log.h:
