build-dev/tcia.o: src/tcia.c include/tcia.h include/http.h include/log.h \
 include/metacache.h
include/tcia.h:
include/http.h:
include/log.h:
include/metacache.h:
