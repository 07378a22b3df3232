build-mut/idc_bucket.o: src/idc_bucket.c include/idc.h include/tcia.h \
 include/http.h src/idc_int.h include/log.h
include/idc.h:
include/tcia.h:
include/http.h:
src/idc_int.h:
include/log.h:
