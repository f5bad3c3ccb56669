export * from './model';
export * from './loader';
export * from './matcher';
export * from './regex';
export * from './resource-tags';
export * from './schema';
export * from './tags';
