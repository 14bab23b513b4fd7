/* One compilation unit of the gcc-build tenant (campaigns/v2.toml): small loops for the optimiser. */
int f1(int x){int s=0;for(int j=0;j<x;j++){s+=j*1^(s>>3);if(s%7==1)s+=x;}return s;}
int f2(int x){int s=0;for(int j=0;j<x;j++){s+=j*2^(s>>3);if(s%7==2)s+=x;}return s;}
int f3(int x){int s=0;for(int j=0;j<x;j++){s+=j*3^(s>>3);if(s%7==3)s+=x;}return s;}
int f4(int x){int s=0;for(int j=0;j<x;j++){s+=j*4^(s>>3);if(s%7==4)s+=x;}return s;}
int f5(int x){int s=0;for(int j=0;j<x;j++){s+=j*5^(s>>3);if(s%7==5)s+=x;}return s;}
int f6(int x){int s=0;for(int j=0;j<x;j++){s+=j*6^(s>>3);if(s%7==6)s+=x;}return s;}
int f7(int x){int s=0;for(int j=0;j<x;j++){s+=j*7^(s>>3);if(s%7==0)s+=x;}return s;}
int f8(int x){int s=0;for(int j=0;j<x;j++){s+=j*8^(s>>3);if(s%7==1)s+=x;}return s;}
int f9(int x){int s=0;for(int j=0;j<x;j++){s+=j*9^(s>>3);if(s%7==2)s+=x;}return s;}
int f10(int x){int s=0;for(int j=0;j<x;j++){s+=j*10^(s>>3);if(s%7==3)s+=x;}return s;}
int f11(int x){int s=0;for(int j=0;j<x;j++){s+=j*11^(s>>3);if(s%7==4)s+=x;}return s;}
int f12(int x){int s=0;for(int j=0;j<x;j++){s+=j*12^(s>>3);if(s%7==5)s+=x;}return s;}
