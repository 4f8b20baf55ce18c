#include <stdio.h>
int main(void)
{
	puts("hookd: not yet");
	return 0;
}
