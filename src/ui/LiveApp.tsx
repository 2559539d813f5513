// The live screen: the data hook wired to the App.
import { App } from './App.js';
import type { LiveSource } from './source.js';
import { useLiveData, type LiveOptions } from './useLiveData.js';

export interface LiveAppProps {
  source: LiveSource;
  options?: LiveOptions;
  onQuit?: () => void;
  width?: number;
  height?: number;
}

export function LiveApp({ source, options, onQuit, width, height }: LiveAppProps) {
  const d = useLiveData(source, options);
  return (
    <App
      {...(d.vm ? { vm: d.vm } : {})}
      {...(d.error !== undefined ? { error: d.error } : {})}
      refreshing={d.refreshing}
      applying={d.applying}
      applyLog={d.applyLog}
      {...(d.apply ? { onApply: d.apply } : {})}
      onRefresh={d.refresh}
      {...(onQuit ? { onQuit } : {})}
      {...(width !== undefined ? { width } : {})}
      {...(height !== undefined ? { height } : {})}
    />
  );
}
