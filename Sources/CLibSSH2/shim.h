#ifndef SVCTRACE_CLIBSSH2_SHIM_H
#define SVCTRACE_CLIBSSH2_SHIM_H

#include <libssh2.h>
#include <libssh2_sftp.h>
#include <libssh2_publickey.h>

#endif
