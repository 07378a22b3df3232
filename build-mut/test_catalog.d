build-mut/test_catalog.o: tests/unit/test_catalog.c include/catalog.h \
 tests/unit/../../src/catalog_int.h include/log.h
include/catalog.h:
tests/unit/../../src/catalog_int.h:
include/log.h:
