build-mut/tree_xattr.o: src/tree_xattr.c include/failures.h \
 src/tree_int.h include/catalog.h include/source.h include/tcia.h \
 include/tcia.h include/tree.h include/store.h include/view.h
include/failures.h:
src/tree_int.h:
include/catalog.h:
include/source.h:
include/tcia.h:
include/tcia.h:
include/tree.h:
include/store.h:
include/view.h:
