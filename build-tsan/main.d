build-tsan/main.o: src/main.c include/auth.h include/fs.h \
 /usr/include/fuse3/fuse.h /usr/include/fuse3/fuse_common.h \
 /usr/include/fuse3/libfuse_config.h /usr/include/fuse3/fuse_opt.h \
 /usr/include/fuse3/fuse_log.h /usr/include/fuse3/fuse_lowlevel.h \
 include/http.h include/log.h include/metacache.h include/store.h \
 include/tcia.h include/tree.h include/store.h include/view.h
include/auth.h:
include/fs.h:
/usr/include/fuse3/fuse.h:
/usr/include/fuse3/fuse_common.h:
/usr/include/fuse3/libfuse_config.h:
/usr/include/fuse3/fuse_opt.h:
/usr/include/fuse3/fuse_log.h:
/usr/include/fuse3/fuse_lowlevel.h:
include/http.h:
include/log.h:
include/metacache.h:
include/store.h:
include/tcia.h:
include/tree.h:
include/store.h:
include/view.h:
