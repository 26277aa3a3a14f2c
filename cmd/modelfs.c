/* placeholder replaced by the command work */
int main(void) { return 1; }
