build-mut/tcia_stream.o: src/tcia_stream.c include/tcia.h src/tcia_int.h \
 include/ahead.h include/log.h
include/tcia.h:
src/tcia_int.h:
include/ahead.h:
include/log.h:
