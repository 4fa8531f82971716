using System.Text;

namespace OrleansFlashSale.Tests;

/// <summary>Redis Cluster's key-to-slot rule (CRC16/XMODEM of the hash tag or the whole key, mod 16384).</summary>
public static class KeySlot
{
    public static int Of(string key)
    {
        var start = key.IndexOf('{');
        if (start >= 0)
        {
            var end = key.IndexOf('}', start + 1);
            if (end > start + 1)
            {
                key = key[(start + 1)..end];
            }
        }

        ushort crc = 0;
        foreach (var b in Encoding.UTF8.GetBytes(key))
        {
            crc ^= (ushort)(b << 8);
            for (var i = 0; i < 8; i++)
            {
                crc = (crc & 0x8000) != 0 ? (ushort)((crc << 1) ^ 0x1021) : (ushort)(crc << 1);
            }
        }

        return crc % 16384;
    }
}
