/* placeholder replaced by the mount helper work */
int main(void) { return 1; }
