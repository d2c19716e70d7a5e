/*
 * channel_pingpong.c - the floor under process isolation's channel: a round
 * trip of 512 bytes between two processes, over a SOCK_STREAM socketpair
 * (what src/isolate/channel.c uses) and over shared memory with futex
 * wake-ups (the alternative DESIGN.md §2b names), and the same futex round
 * trip between two threads of one process: the difference between the last
 * two is what a switch of address space costs (run it under `taskset -c 0`
 * to keep both sides on one CPU). No txscan code.
 *
 *   channel_pingpong        p50/p99 of 20,000 round trips each way
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static uint64_t ns(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000ull+t.tv_nsec;}
static int cmp(const void*a,const void*b){uint64_t x=*(uint64_t*)a,y=*(uint64_t*)b;return x<y?-1:x>y;}
#define N 20000
static uint64_t lat[N];
static void report(const char *what){qsort(lat,N,sizeof*lat,cmp);printf("%-10s p50 %.1f us p99 %.1f us\n",what,lat[N/2]/1e3,lat[N*99/100]/1e3);}
static void fwait(atomic_uint *w, unsigned v){while(atomic_load(w)==v) syscall(SYS_futex,w,FUTEX_WAIT,v,NULL,NULL,0);}
static void fwake(atomic_uint *w){atomic_fetch_add(w,1);syscall(SYS_futex,w,FUTEX_WAKE,1,NULL,NULL,0);}
struct shared { atomic_uint req, rsp; char data[512]; };
static void pong(struct shared *sh){char buf[512];for(unsigned i=0;i<N;i++){fwait(&sh->req,i);memcpy(buf,sh->data,512);fwake(&sh->rsp);}}
static void ping(struct shared *sh,const char *buf){for(unsigned i=0;i<N;i++){uint64_t t=ns();memcpy(sh->data,buf,512);fwake(&sh->req);fwait(&sh->rsp,i);lat[i]=ns()-t;}}
static void *pong_main(void *sh){pong(sh);return NULL;}
/* shared memory with eventfd wake-ups, each side in poll() as the I/O
 * threads are (they also watch the socket for the other side's death) */
static void ewait(atomic_uint *w, unsigned v, int fd){uint64_t x;while(atomic_load(w)==v){struct pollfd p={fd,POLLIN,0};poll(&p,1,-1);if(read(fd,&x,8)<0)break;}}
static void ewake(atomic_uint *w, int fd){uint64_t one=1;atomic_fetch_add(w,1);if(write(fd,&one,8)<0)_exit(1);}
int main(void){
	char buf[512]; int sv[2]; socketpair(AF_UNIX,SOCK_STREAM,0,sv);
	if(!fork()){close(sv[0]);for(int i=0;i<N;i++){read(sv[1],buf,512);write(sv[1],buf,512);}_exit(0);}
	close(sv[1]); memset(buf,1,512);
	for(int i=0;i<N;i++){uint64_t t=ns();write(sv[0],buf,512);read(sv[0],buf,512);lat[i]=ns()-t;}
	wait(NULL); report("socketpair");
	int a[2], b[2]; if (pipe(a) || pipe(b)) return 1;
	if(!fork()){for(int i=0;i<N;i++){if(read(a[0],buf,512)<0||write(b[1],buf,512)<0)_exit(1);}_exit(0);}
	for(int i=0;i<N;i++){uint64_t t=ns();if(write(a[1],buf,512)<0||read(b[0],buf,512)<0)return 1;lat[i]=ns()-t;}
	wait(NULL); report("pipes");
	int sp[2], c[2]; if (socketpair(AF_UNIX,SOCK_STREAM,0,sp) || pipe(c)) return 1;
	if(!fork()){for(int i=0;i<N;i++){if(read(sp[1],buf,512)<0||write(c[1],buf,512)<0)_exit(1);}_exit(0);}
	for(int i=0;i<N;i++){uint64_t t=ns();if(send(sp[0],buf,512,MSG_NOSIGNAL)<0||read(c[0],buf,512)<0)return 1;lat[i]=ns()-t;}
	wait(NULL); report("socket out, pipe back");
	struct shared *sh = mmap(NULL,4096,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0);
	atomic_init(&sh->req,0); atomic_init(&sh->rsp,0);
	if(!fork()){pong(sh);_exit(0);}
	ping(sh,buf);
	wait(NULL); report("shm+futex");
	atomic_init(&sh->req,0); atomic_init(&sh->rsp,0);
	pthread_t t; pthread_create(&t,NULL,pong_main,sh);
	ping(sh,buf);
	pthread_join(t,NULL); report("thread+futex");
	int e1=eventfd(0,EFD_NONBLOCK), e2=eventfd(0,EFD_NONBLOCK);
	atomic_init(&sh->req,0); atomic_init(&sh->rsp,0);
	if(!fork()){for(unsigned i=0;i<N;i++){ewait(&sh->req,i,e1);memcpy(buf,sh->data,512);ewake(&sh->rsp,e2);}_exit(0);}
	for(unsigned i=0;i<N;i++){uint64_t t=ns();memcpy(sh->data,buf,512);ewake(&sh->req,e1);ewait(&sh->rsp,i,e2);lat[i]=ns()-t;}
	wait(NULL); report("shm+eventfd");
}
