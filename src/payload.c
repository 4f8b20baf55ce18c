/* payload: not written yet. */
#include "payload.h"
extern int hookd_payload_unwritten;
