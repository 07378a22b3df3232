build-mut/idc.o: src/idc.c include/idc.h include/tcia.h include/ahead.h \
 include/http.h src/idc_int.h include/log.h
include/idc.h:
include/tcia.h:
include/ahead.h:
include/http.h:
src/idc_int.h:
include/log.h:
