build-mut/tcia.o: src/tcia.c include/tcia.h src/tcia_int.h include/http.h \
 include/log.h include/metacache.h
include/tcia.h:
src/tcia_int.h:
include/http.h:
include/log.h:
include/metacache.h:
