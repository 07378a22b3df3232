build-tsan/tree.o: src/tree.c include/tree.h include/store.h \
 include/log.h include/tcia.h include/view.h
include/tree.h:
include/store.h:
include/log.h:
include/tcia.h:
include/view.h:
