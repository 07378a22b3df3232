build-mut/tree_table.o: src/tree_table.c include/fileio.h \
 include/jsonobj.h include/log.h src/tree_int.h include/catalog.h \
 include/source.h include/tcia.h include/tcia.h include/tree.h \
 include/store.h include/view.h
include/fileio.h:
include/jsonobj.h:
include/log.h:
src/tree_int.h:
include/catalog.h:
include/source.h:
include/tcia.h:
include/tcia.h:
include/tree.h:
include/store.h:
include/view.h:
