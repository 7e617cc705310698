#include "cluster/manifest.h"
