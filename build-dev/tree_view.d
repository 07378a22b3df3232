build-dev/tree_view.o: src/tree_view.c include/log.h src/tree_int.h \
 include/tcia.h include/tree.h include/store.h include/view.h
include/log.h:
src/tree_int.h:
include/tcia.h:
include/tree.h:
include/store.h:
include/view.h:
