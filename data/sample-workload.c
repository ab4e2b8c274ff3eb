#include <stdio.h>
#include <stdlib.h>
static volatile unsigned long sink;
__attribute__((noinline)) static void hash_block(unsigned n){ unsigned long h=1469598103934665603UL; for(unsigned i=0;i<n;i++){h^=i; h*=1099511628211UL;} sink+=h; }
__attribute__((noinline)) static void sort_block(unsigned n){ int *a=malloc(n*sizeof(int)); for(unsigned i=0;i<n;i++)a[i]=rand(); for(unsigned i=1;i<n;i++){int v=a[i];unsigned j=i;while(j>0&&a[j-1]>v){a[j]=a[j-1];j--;}a[j]=v;} sink+=a[0]; free(a);}
__attribute__((noinline)) static void parse_input(unsigned r){ for(unsigned k=0;k<r;k++){ char buf[64]; snprintf(buf,sizeof buf,"%u;%u",k,k*7); sink+=atoi(buf);} }
__attribute__((noinline)) static void worker(int round){ hash_block(2000000); if(round%2) sort_block(3000); parse_input(20000); }
int main(void){ for(int r=0;r<60;r++) worker(r); return 0; }
