build-mut/source.o: src/source.c include/source.h include/tcia.h \
 include/idc.h include/log.h
include/source.h:
include/tcia.h:
include/idc.h:
include/log.h:
