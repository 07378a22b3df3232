build-mut/tree_view.o: src/tree_view.c include/fileio.h include/log.h \
 src/tree_int.h include/catalog.h include/source.h include/tcia.h \
 include/tcia.h include/tree.h include/store.h include/view.h
include/fileio.h:
include/log.h:
src/tree_int.h:
include/catalog.h:
include/source.h:
include/tcia.h:
include/tcia.h:
include/tree.h:
include/store.h:
include/view.h:
