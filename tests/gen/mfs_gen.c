/* placeholder replaced by the generator work */
int main(void) { return 1; }
