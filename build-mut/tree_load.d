build-mut/tree_load.o: src/tree_load.c include/catalog.h include/log.h \
 src/tree_int.h include/source.h include/tcia.h include/tcia.h \
 include/tree.h include/store.h include/view.h
include/catalog.h:
include/log.h:
src/tree_int.h:
include/source.h:
include/tcia.h:
include/tcia.h:
include/tree.h:
include/store.h:
include/view.h:
