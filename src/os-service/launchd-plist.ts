// launchd agent for macOS: ~/Library/LaunchAgents/<label>.plist. KeepAlive
// with SuccessfulExit=false restarts the daemon only when it fails.
import os from 'node:os';
import path from 'node:path';

export const LAUNCHD_LABEL = 'network.pilot.daemon';

export interface PlistOptions {
  argv: string[];
  home: string;
}

const xml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function renderLaunchdPlist(o: PlistOptions): string {
  const str = (s: string): string => `<string>${xml(s)}</string>`;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    '<dict>',
    `  <key>Label</key>${str(LAUNCHD_LABEL)}`,
    '  <key>ProgramArguments</key>',
    '  <array>',
    ...o.argv.map((a) => `    ${str(a)}`),
    '  </array>',
    '  <key>EnvironmentVariables</key>',
    `  <dict><key>PILOT_HOME</key>${str(o.home)}</dict>`,
    '  <key>RunAtLoad</key><true/>',
    '  <key>KeepAlive</key>',
    '  <dict><key>SuccessfulExit</key><false/></dict>',
    `  <key>StandardOutPath</key>${str(path.join(o.home, 'launchd.out.log'))}`,
    `  <key>StandardErrorPath</key>${str(path.join(o.home, 'launchd.err.log'))}`,
    '</dict>',
    '</plist>',
    '',
  ].join('\n');
}

export function launchdPlistPath(homeDir = os.homedir()): string {
  return path.join(homeDir, 'Library', 'LaunchAgents', `${LAUNCHD_LABEL}.plist`);
}
