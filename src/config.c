/* config: not written yet. */
#include "config.h"
extern int hookd_config_unwritten;
