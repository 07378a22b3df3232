build-dev/fs.o: src/fs.c include/fs.h \
 /work/main/build/fuse317/include/fuse3/fuse.h \
 /work/main/build/fuse317/include/fuse3/fuse_common.h \
 /work/main/build/fuse317/include/fuse3/libfuse_config.h \
 /work/main/build/fuse317/include/fuse3/fuse_opt.h \
 /work/main/build/fuse317/include/fuse3/fuse_log.h \
 /work/main/build/fuse317/include/fuse3/fuse_lowlevel.h include/log.h \
 include/tree.h include/store.h
include/fs.h:
/work/main/build/fuse317/include/fuse3/fuse.h:
/work/main/build/fuse317/include/fuse3/fuse_common.h:
/work/main/build/fuse317/include/fuse3/libfuse_config.h:
/work/main/build/fuse317/include/fuse3/fuse_opt.h:
/work/main/build/fuse317/include/fuse3/fuse_log.h:
/work/main/build/fuse317/include/fuse3/fuse_lowlevel.h:
include/log.h:
include/tree.h:
include/store.h:
