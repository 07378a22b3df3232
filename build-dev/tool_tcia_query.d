build-dev/tool_tcia_query.o: tests/tools/tcia_query.c include/auth.h \
 include/http.h include/log.h include/metacache.h include/tcia.h
include/auth.h:
include/http.h:
include/log.h:
include/metacache.h:
include/tcia.h:
