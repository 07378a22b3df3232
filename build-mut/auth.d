build-mut/auth.o: src/auth.c include/auth.h include/http.h include/log.h
include/auth.h:
include/http.h:
include/log.h:
