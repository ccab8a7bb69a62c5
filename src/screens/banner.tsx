// Knocknoc's banner (figlet "KNOCKNOC"), or plain text on a terminal too narrow for it.
import { Box, Text, useStdout } from 'ink';

export function Banner({ art }: { art: string }) {
  const { stdout } = useStdout();
  const lines = art.replace(/\n+$/, '').split('\n');
  const width = Math.max(...lines.map((l) => l.trimEnd().length));
  if ((stdout?.columns ?? 80) < width) {
    return <Text bold>KNOCKNOC</Text>;
  }
  return (
    <Box flexDirection="column">
      {lines.map((line, i) => (
        <Text key={i}>{line}</Text>
      ))}
    </Box>
  );
}
