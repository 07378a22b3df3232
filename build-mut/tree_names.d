build-mut/tree_names.o: src/tree_names.c include/tree.h include/store.h \
 include/failures.h include/log.h src/tree_int.h include/catalog.h \
 include/source.h include/tcia.h include/tcia.h include/view.h \
 include/utf8.h
include/tree.h:
include/store.h:
include/failures.h:
include/log.h:
src/tree_int.h:
include/catalog.h:
include/source.h:
include/tcia.h:
include/tcia.h:
include/view.h:
include/utf8.h:
