import { useMemo } from "react";
import { Box } from "@mui/material";
import QRCode from "qrcode";

interface QrCodeProps {
  text: string;
  /** Rendered size in CSS pixels. */
  size?: number;
  label: string;
}

/**
 * A QR code drawn as an SVG path, computed locally (the `qrcode` package's encoder; nothing is
 * sent anywhere). Always dark on white with a quiet zone, so phone cameras read it in dark mode.
 */
export function QrCode({ text, size = 200, label }: QrCodeProps) {
  const { path, count } = useMemo(() => {
    const qr = QRCode.create(text, { errorCorrectionLevel: "M" });
    const n = qr.modules.size;
    let d = "";
    for (let row = 0; row < n; row++) {
      for (let col = 0; col < n; col++) {
        if (qr.modules.get(row, col)) d += `M${col + 4} ${row + 4}h1v1h-1z`;
      }
    }
    return { path: d, count: n + 8 };
  }, [text]);
  return (
    <Box
      component="svg"
      role="img"
      aria-label={label}
      viewBox={`0 0 ${count} ${count}`}
      width={size}
      height={size}
      shapeRendering="crispEdges"
      sx={{ display: "block", bgcolor: "#fff", borderRadius: 1 }}
    >
      <rect width={count} height={count} fill="#fff" />
      <path d={path} fill="#000" />
    </Box>
  );
}
