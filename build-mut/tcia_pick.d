build-mut/tcia_pick.o: src/tcia_pick.c include/tcia.h src/tcia_int.h \
 include/jsonobj.h include/utf8.h
include/tcia.h:
src/tcia_int.h:
include/jsonobj.h:
include/utf8.h:
