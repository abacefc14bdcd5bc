#ifndef SVCTRACE_CLIBSSH2_SHIM_H
#define SVCTRACE_CLIBSSH2_SHIM_H

#include <libssh2.h>
#include <libssh2_sftp.h>
#include <libssh2_publickey.h>
#include <stdlib.h>
#include <string.h>

// Function-like macros (libssh2_channel_exec and the like) and C callbacks that need context do not
// import into Swift: these static inline shims stand in for them.

/// Answers every keyboard-interactive prompt with the password stored in the session's
/// abstract pointer (a NUL-terminated C string set just before the call, cleared after).
/// > "the responses ... are free(3)ed by the library" (libssh2_userauth_keyboard_interactive_ex)
static void svctrace_kbdint_answer(const char *name, int name_len, const char *instruction,
                                   int instruction_len, int num_prompts,
                                   const LIBSSH2_USERAUTH_KBDINT_PROMPT *prompts,
                                   LIBSSH2_USERAUTH_KBDINT_RESPONSE *responses, void **abstract) {
  (void)name; (void)name_len; (void)instruction; (void)instruction_len; (void)prompts;
  const char *password = (abstract && *abstract) ? (const char *)*abstract : "";
  for (int i = 0; i < num_prompts; i++) {
    responses[i].text = strdup(password);
    responses[i].length = responses[i].text ? (unsigned int)strlen(password) : 0;
  }
}

/// keyboard-interactive authentication answering with the session's abstract password.
static inline int svctrace_userauth_kbdint(LIBSSH2_SESSION *session, const char *user,
                                           unsigned int user_len) {
  return libssh2_userauth_keyboard_interactive_ex(session, user, user_len, svctrace_kbdint_answer);
}

/// Stores `value` in the session's abstract pointer (used by the keyboard-interactive callback).
static inline void svctrace_session_set_abstract(LIBSSH2_SESSION *session, void *value) {
  *libssh2_session_abstract(session) = value;
}

#endif
