build-dev/main.o: src/main.c include/auth.h include/failures.h \
 include/fs.h /work/main/build/fuse317/include/fuse3/fuse.h \
 /work/main/build/fuse317/include/fuse3/fuse_common.h \
 /work/main/build/fuse317/include/fuse3/libfuse_config.h \
 /work/main/build/fuse317/include/fuse3/fuse_opt.h \
 /work/main/build/fuse317/include/fuse3/fuse_log.h \
 /work/main/build/fuse317/include/fuse3/fuse_lowlevel.h include/http.h \
 include/log.h include/metacache.h include/store.h include/tcia.h \
 include/tree.h include/store.h include/view.h
include/auth.h:
include/failures.h:
include/fs.h:
/work/main/build/fuse317/include/fuse3/fuse.h:
/work/main/build/fuse317/include/fuse3/fuse_common.h:
/work/main/build/fuse317/include/fuse3/libfuse_config.h:
/work/main/build/fuse317/include/fuse3/fuse_opt.h:
/work/main/build/fuse317/include/fuse3/fuse_log.h:
/work/main/build/fuse317/include/fuse3/fuse_lowlevel.h:
include/http.h:
include/log.h:
include/metacache.h:
include/store.h:
include/tcia.h:
include/tree.h:
include/store.h:
include/view.h:
